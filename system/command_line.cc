#include "viommu/system/command_line.h"

#include <charconv>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "viommu/util/log.h"
#include "viommu/util/status_macros.h"

namespace viommu::system {
namespace {

// Flags accepted for compatibility and ignored; true when they take a value.
const absl::flat_hash_map<absl::string_view, bool>& IgnoredFlags() {
  static const auto* flags = new absl::flat_hash_map<absl::string_view, bool>{
      {"display", true},     {"accel", true},  {"bios", true},
      {"audio", true},       {"serial", true}, {"name", true},
      {"nodefaults", false}, {"S", false},     {"no-shutdown", false},
  };
  return *flags;
}

// Splits on ',' honouring ",," as a literal comma.
std::vector<std::string> SplitCommas(absl::string_view text) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ',') {
      if (i + 1 < text.size() && text[i + 1] == ',') {
        out.back() += ',';
        ++i;
      } else {
        out.emplace_back();
      }
    } else {
      out.back() += text[i];
    }
  }
  return out;
}

// -trace [enable=]PATTERN[,events=FILE][,file=FILE], -d ITEMS, -D FILE.
[[nodiscard]] absl::Status ParseLogFlag(absl::string_view flag,
                                        absl::string_view value,
                                        VmConfig* config) {
  if (flag == "D") {
    config->log_file = std::string(value);
    return absl::OkStatus();
  }
  if (flag == "trace") {
    VIOMMU_ASSIGN_OR_RETURN(OptionList t, ParseOptionList(value, "enable"));
    if (!t.head.empty()) config->trace_patterns.push_back(t.head);
    for (const auto& [k, v] : t.props) {
      if (k == "enable") {
        config->trace_patterns.push_back(v);
      } else if (k == "events") {
        config->trace_event_files.push_back(v);
      } else if (k == "file") {
        config->log_file = v;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("-trace ", value, ": Invalid parameter '", k, "'"));
      }
    }
    return absl::OkStatus();
  }
  // -d: categories, "help", and trace:PATTERN items.
  std::string categories;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    if (item == "help") {
      config->log_help = true;
    } else if (absl::StartsWith(item, "trace:")) {
      config->trace_patterns.emplace_back(item.substr(6));
    } else {
      absl::StrAppend(&categories, categories.empty() ? "" : ",", item);
    }
  }
  uint32_t mask = 0;
  VIOMMU_RETURN_IF_ERROR(log::Log::ParseMask(categories, &mask));
  config->log_mask |= mask;
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> OptionList::Get(absl::string_view key) const {
  std::optional<std::string> v;
  for (const auto& [k, val] : props) {
    if (k == key) v = val;
  }
  return v;
}

absl::StatusOr<OptionList> ParseOptionList(absl::string_view text,
                                           absl::string_view implied_key) {
  OptionList list;
  std::vector<std::string> parts = SplitCommas(text);
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    size_t eq = part.find('=');
    if (i == 0 && eq == std::string::npos) {
      list.head = part;
      continue;
    }
    if (part.empty()) {
      if (i + 1 == parts.size()) continue;  // trailing comma
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid parameter '' in '", text, "'"));
    }
    if (eq == std::string::npos) {
      // QEMU reads a bare "flag" as flag=on.
      list.props.emplace_back(part, "on");
      continue;
    }
    std::string key = part.substr(0, eq);
    std::string value = part.substr(eq + 1);
    if (!implied_key.empty() && key == implied_key && list.head.empty()) {
      list.head = value;
    } else {
      list.props.emplace_back(std::move(key), std::move(value));
    }
  }
  return list;
}

absl::StatusOr<uint64_t> ParseSize(absl::string_view text,
                                   char default_suffix) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "Parameter 'size' expects a non-negative number below 2^64 "
        "(optional suffix k, M, G, T, P or E), got '",
        text, "'"));
  };
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p == text.data()) return bad();
  absl::string_view rest(p, text.data() + text.size() - p);
  char suffix = default_suffix;
  if (rest.size() == 1) {
    suffix = rest[0];
  } else if (rest.size() == 2 && (rest[1] == 'B' || rest[1] == 'b')) {
    suffix = rest[0];
  } else if (rest.size() > 1) {
    return bad();
  }
  int shift = 0;
  switch (suffix) {
    case 'B':
    case 'b':
      shift = 0;
      break;
    case 'K':
    case 'k':
      shift = 10;
      break;
    case 'M':
    case 'm':
      shift = 20;
      break;
    case 'G':
    case 'g':
      shift = 30;
      break;
    case 'T':
    case 't':
      shift = 40;
      break;
    case 'P':
    case 'p':
      shift = 50;
      break;
    case 'E':
    case 'e':
      shift = 60;
      break;
    default:
      return bad();
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return bad();
  return value << shift;
}

absl::StatusOr<VmConfig> ParseCommandLine(absl::Span<const std::string> args) {
  VmConfig config;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "-") || arg == "-" || arg == "--") {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", arg, "': unexpected argument (options start with '-')"));
    }
    absl::string_view flag = arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
    if (auto it = IgnoredFlags().find(flag); it != IgnoredFlags().end()) {
      if (it->second) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("-", flag, ": requires an argument"));
        }
        ++i;
      }
      continue;
    }
    static const absl::flat_hash_set<absl::string_view> kWithValue = {
        "machine", "M",   "m",   "device", "object", "chardev", "mon",
        "qmp",     "qtest", "qtest-log", "trace", "d", "D"};
    if (!kWithValue.contains(flag)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "-", flag, ": invalid option (not supported by viommu)"));
    }
    if (i + 1 >= args.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("-", flag, ": requires an argument"));
    }
    absl::string_view value = args[++i];
    if (flag == "machine" || flag == "M") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList m, ParseOptionList(value, "type"));
      if (!m.head.empty()) config.machine = m.head;
      for (const auto& [k, v] : m.props) {
        if (k == "vfio-host") {
          if (v != "model" && v != "linux") {
            return absl::InvalidArgumentError(absl::StrCat(
                "-machine: vfio-host must be 'model' or 'linux', not '", v,
                "'"));
          }
          config.vfio_host = v;
        } else if (k == "accel" || k == "kernel-irqchip" || k == "smm" ||
                   k == "graphics" || k == "usb") {
          // QEMU machine options with no meaning here.
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("-machine: Property '", config.machine, "-machine.",
                           k, "' not found"));
        }
      }
      if (config.machine != "q35" && config.machine != "pc-q35-7.2") {
        return absl::InvalidArgumentError(
            absl::StrCat("-machine: unsupported machine type '", config.machine,
                         "' (viommu models q35)"));
      }
    } else if (flag == "m") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList m, ParseOptionList(value, "size"));
      std::optional<std::string> size =
          m.head.empty() ? m.Get("size") : std::optional(m.head);
      if (!size) return absl::InvalidArgumentError("-m: missing 'size'");
      VIOMMU_ASSIGN_OR_RETURN(config.ram_size, ParseSize(*size, 'M'));
      if (config.ram_size == 0) {
        return absl::InvalidArgumentError("-m: RAM size must not be 0");
      }
    } else if (flag == "device") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList d, ParseOptionList(value, "driver"));
      if (d.head.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("-device ", value, ": Parameter 'driver' is missing"));
      }
      config.devices.push_back(std::move(d));
    } else if (flag == "object") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList o, ParseOptionList(value, "qom-type"));
      if (o.head.empty() || !o.Get("id")) {
        return absl::InvalidArgumentError(
            absl::StrCat("-object ", value, ": needs a type and an id"));
      }
      config.objects.push_back(std::move(o));
    } else if (flag == "chardev") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList c, ParseOptionList(value, "backend"));
      config.chardevs.push_back(std::move(c));
    } else if (flag == "mon") {
      VIOMMU_ASSIGN_OR_RETURN(OptionList c, ParseOptionList(value, "chardev"));
      if (!c.head.empty()) c.props.emplace_back("chardev", c.head);
      config.monitors.push_back(std::move(c));
    } else if (flag == "qmp") {
      config.qmp.emplace_back(value);
    } else if (flag == "qtest") {
      config.qtest = std::string(value);
    } else if (flag == "qtest-log") {
      config.qtest_log = std::string(value);
    } else if (flag == "trace" || flag == "d" || flag == "D") {
      VIOMMU_RETURN_IF_ERROR(ParseLogFlag(flag, value, &config));
    }
  }
  return config;
}

}  // namespace viommu::system
