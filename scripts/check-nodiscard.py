#!/usr/bin/env python3
"""Fails when a function returning absl::Status or absl::StatusOr<...> is not [[nodiscard]].

STYLE.md rule 10: every function that can fail returns a Status and is
[[nodiscard]]. (Debian's Abseil 20220623 also declares the Status and
StatusOr classes [[nodiscard]] when the compiler has the attribute; the
function attribute states the rule at the declaration and does not depend
on that.) This script keeps new declarations from slipping through:

    scripts/check-nodiscard.py [--root DIR] [PATH...]
    scripts/check-nodiscard.py --self-test     prove the check can fail

PATHs (files or directories, relative to --root, default: the repository)
default to every top-level source directory (util memory hw vfio system
tools include tests and any new one; not subprojects/, docs/, scripts/ or a
build tree), so production code, the fakes and test helpers. Each
missing attribute is reported as
    path:line: function returns absl::Status but is not [[nodiscard]]
and the exit status is 1 when there is at least one.

What counts (a small C++ reader, not a compiler): a declaration or definition
at namespace or class scope whose return type is absl::Status or
absl::StatusOr<...> by value, after any template header, attributes and
static/virtual/inline/constexpr/friend/extern/explicit specifiers, with an
unqualified name; multi-line declarations and trailing return types
(`auto F() -> absl::Status`) included. Exempt, because the attribute sits on
a declaration checked elsewhere:
  - qualified names (`absl::Status Foo::Bar(...) {`, `ns::F`): out-of-line
    definitions of something declared before;
  - an unqualified definition whose declaration (same namespace/class path
    and name) appears in a scanned header or earlier in the same file;
  - friend declarations that are not definitions (C++ allows no attribute
    there);
  - lambdas and anything else inside function bodies, references and
    pointers to Status, std::function<absl::Status(...)> and other uses as a
    template argument.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

# Not source: third-party wraps, documents, scripts. Build trees (any
# directory holding build.ninja or meson-private) are skipped too.
NOT_SOURCE_DIRS = {'subprojects', 'docs', 'scripts'}


def default_paths(root):
    """Every top-level source directory: util memory hw vfio system tools
    include tests ..., and any layer added later (devcore, examples, ...)."""
    paths = []
    for d in sorted(os.listdir(root)):
        full = os.path.join(root, d)
        if (not os.path.isdir(full) or d.startswith('.') or
                d in NOT_SOURCE_DIRS or
                os.path.exists(os.path.join(full, 'build.ninja')) or
                os.path.isdir(os.path.join(full, 'meson-private'))):
            continue
        paths.append(d)
    return paths

SOURCE_EXTS = ('.h', '.hh', '.hpp', '.cc', '.cpp', '.cxx')
HEADER_EXTS = ('.h', '.hh', '.hpp')

SPECIFIERS = {'static', 'virtual', 'inline', 'constexpr', 'consteval',
              'friend', 'extern', 'explicit', 'const'}
ACCESS_RE = re.compile(r'^(public|private|protected)\s*:(?!:)')
IDENT_RE = re.compile(r'[A-Za-z_]\w*')
STATUS_RE = re.compile(r'(?<![\w:])(?:::\s*)?absl\s*::\s*Status(Or)?\b')
MACRO_RE = re.compile(r'[A-Z][A-Z0-9_]*$')


def strip_code(text):
    """Blanks comments, string/char literals and preprocessor lines.

    Keeps every newline (line numbers stay right) and the quote characters.
    """
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == '#':
            # Preprocessor directive, with backslash continuations.
            while i < n and text[i] != '\n':
                if text[i] == '\\' and i + 1 < n and text[i + 1] == '\n':
                    out.append(' \n')
                    i += 2
                    continue
                out.append(' ')
                i += 1
            continue
        if c == '\n':
            out.append(c)
            at_line_start = True
            i += 1
            continue
        if c in ' \t\r\f\v':
            out.append(c)
            i += 1
            continue
        at_line_start = False
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
            continue
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
            continue
        if c == '"':
            # Raw string? Look back for R, u8R, LR, ...
            m = re.search(r'(?:u8|u|U|L)?R$', text[max(0, i - 3):i])
            if m and not re.match(r'\w', text[i - len(m.group(0)) - 1:i - len(m.group(0))] or ' '):
                close = text.find('(', i)
                delim = text[i + 1:close]
                end = text.find(')' + delim + '"', close)
                end = n if end < 0 else end + len(delim) + 2
                out.append('"' + re.sub(r'[^\n]', ' ', text[i + 1:end - 1]) + '"')
                i = end
                continue
            j = i + 1
            while j < n and text[j] != '"' and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append('"' + ' ' * (min(j, n) - i - 1) + '"')
            i = j + 1
            continue
        if c == "'":
            # A digit separator (1'000) or a character literal?
            k = i
            while k > 0 and (text[k - 1].isalnum() or text[k - 1] in "_'"):
                k -= 1
            if k < i and text[k].isdigit():
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != "'" and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append("'" + ' ' * (min(j, n) - i - 1) + "'")
            i = j + 1
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def skip_balanced(s, i, open_c, close_c):
    """s[i] == open_c; returns the index after the matching close_c (or -1)."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        elif c in ';{}' and open_c == '<':
            return -1
        i += 1
    return -1


def skip_ws(s, i):
    while i < len(s) and s[i].isspace():
        i += 1
    return i


def parse_qualified_name(s, i):
    """Reads `A::B<T>::~C` or `operator==` at s[i]; returns (name, end) or (None, i)."""
    parts = []
    j = skip_ws(s, i)
    if s.startswith('::', j):
        j = skip_ws(s, j + 2)
    while True:
        if s.startswith('~', j):
            j = skip_ws(s, j + 1)
        m = IDENT_RE.match(s, j)
        if not m:
            return (None, i)
        ident = m.group(0)
        j = m.end()
        if ident == 'operator':
            m2 = re.compile(r'\s*(\(\)|\[\]|[^\s\w(]+|\w[\w\s:<>*&]*?(?=\())').match(s, j)
            if not m2:
                return (None, i)
            parts.append('operator' + m2.group(1).strip())
            return ('::'.join(parts), m2.end())
        parts.append(ident)
        k = skip_ws(s, j)
        if k < len(s) and s[k] == '<':
            e = skip_balanced(s, k, '<', '>')
            if e < 0:
                return (None, i)
            k = skip_ws(s, e)
        if s.startswith('::', k):
            j = skip_ws(s, k + 2)
            continue
        return ('::'.join(parts), j if k >= len(s) or s[k] != '<' else k)


def parse_head(head):
    """Splits a declaration head (text before the return type) into specifiers.

    Returns (ok, has_nodiscard, is_friend, rest) where rest is what remains
    after removing the template header, attributes and specifiers.
    """
    h = head.strip()
    nodiscard = False
    friend = False
    while True:
        h = h.lstrip()
        m = ACCESS_RE.match(h)
        if m:
            h = h[m.end():]
            continue
        if h.startswith('template'):
            k = skip_ws(h, len('template'))
            if k < len(h) and h[k] == '<':
                e = skip_balanced(h, k, '<', '>')
                if e < 0:
                    return (False, False, False, h)
                h = h[e:]
                continue
        if h.startswith('[['):
            e = h.find(']]')
            if e < 0:
                return (False, False, False, h)
            if re.search(r'\bnodiscard\b', h[2:e]):
                nodiscard = True
            h = h[e + 2:]
            continue
        m = IDENT_RE.match(h)
        if m and (m.group(0) in SPECIFIERS or MACRO_RE.match(m.group(0))):
            word = m.group(0)
            if word == 'friend':
                friend = True
            h = h[m.end():]
            if MACRO_RE.match(word):
                k = skip_ws(h, 0)
                if k < len(h) and h[k] == '(':
                    e = skip_balanced(h, k, '(', ')')
                    if e < 0:
                        return (False, False, False, h)
                    h = h[e:]
            continue
        break
    return (True, nodiscard, friend, h.strip())


class Decl:
    def __init__(self, path, line, scope, name, nodiscard, is_definition,
                 is_friend, qualified, in_class):
        self.path = path
        self.in_class = in_class
        self.line = line
        self.scope = scope
        self.name = name
        self.nodiscard = nodiscard
        self.is_definition = is_definition
        self.is_friend = is_friend
        self.qualified = qualified


def scan(path, text):
    """Returns every Status-returning function declaration in one file."""
    s = strip_code(text)
    line_of = []
    ln = 1
    for ch in s:
        line_of.append(ln)
        if ch == '\n':
            ln += 1
    line_of.append(ln)

    decls = []
    # Scope stack: (kind, name) with kind 'ns', 'class' or 'body'.
    stack = [('ns', '')]
    stmt_start = 0
    i, n = 0, len(s)
    pending = []  # Status occurrences in the current statement at decl scope.
    while i < n:
        c = s[i]
        kind = stack[-1][0]
        if kind != 'body':
            m = STATUS_RE.match(s, i)
            if m and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] == '_')):
                pending.append((i, m))
                i = m.end()
                continue
        if c == '{':
            head = s[stmt_start:i]
            if kind == 'body':
                stack.append(('body', ''))
            else:
                for pos, m in pending:
                    d = classify(path, s, line_of, stack, stmt_start, pos, m,
                                 is_definition=True, end=i)
                    if d:
                        decls.append(d)
                pending = []
                stack.append(scope_of(head))
            stmt_start = i + 1
        elif c == '}':
            if len(stack) > 1:
                stack.pop()
            pending = []
            stmt_start = i + 1
        elif c == ';':
            if kind != 'body':
                for pos, m in pending:
                    d = classify(path, s, line_of, stack, stmt_start, pos, m,
                                 is_definition=False, end=i)
                    if d:
                        decls.append(d)
            pending = []
            stmt_start = i + 1
        elif c == ':' and kind == 'class':
            m = ACCESS_RE.match(s[stmt_start:i + 2].strip())
            if m and s[stmt_start:i + 1].strip() == m.group(0).strip():
                stmt_start = i + 1
        i += 1
    return decls


def scope_of(head):
    """What a `{` after this head opens: ('ns', name), ('class', name) or ('body', '')."""
    ok, _, _, h = parse_head(head)
    h = h.strip()
    m = re.match(r'^(?:inline\s+)?namespace\b\s*([\w:]*)', h)
    if m:
        return ('ns', m.group(1) or '(anonymous)')
    if re.match(r'^extern\s*"', head.strip()):
        return ('ns', '')
    m = re.match(r'^(class|struct|union)\b\s*(?:\[\[[^\]]*\]\]\s*)?'
                 r'(?:[A-Z][A-Z0-9_]*\s+)*([A-Za-z_][\w:]*)?', h)
    if m and '(' not in h.split(':')[0] and '=' not in h:
        return ('class', m.group(2) or '(anonymous)')
    return ('body', '')


def classify(path, s, line_of, stack, stmt_start, pos, m, is_definition, end):
    """Is the Status occurrence at pos the return type of a function declaration?"""
    head = s[stmt_start:pos]
    j = m.end()
    if m.group(1):  # StatusOr<...>
        k = skip_ws(s, j)
        if k >= len(s) or s[k] != '<':
            return None
        j = skip_balanced(s, k, '<', '>')
        if j < 0:
            return None
    scope = tuple(name for _, name in stack if name)
    stripped_head = head.strip()
    if stripped_head.endswith('->'):
        # Trailing return type: `auto F(...) -> absl::Status`.
        ok, nodiscard, friend, rest = parse_head(stripped_head[:-2])
        if not ok or not rest.startswith('auto'):
            return None
        name, e = parse_qualified_name(rest, len('auto'))
        if not name or rest[skip_ws(rest, e):skip_ws(rest, e) + 1] != '(':
            return None
    else:
        ok, nodiscard, friend, rest = parse_head(head)
        if not ok or rest:
            return None  # A template argument, `using X =`, a variable, ...
        k = skip_ws(s, j)
        if k < len(s) and s[k] in '&*(':
            return None  # Reference, pointer, or an unnamed function type.
        name, e = parse_qualified_name(s, k)
        if not name:
            return None
        e = skip_ws(s, e)
        if e >= len(s) or s[e] != '(':
            return None  # A variable or member.
    return Decl(path, line_of[pos], scope, name, nodiscard, is_definition,
                friend, '::' in name, stack[-1][0] == 'class')


def find_violations(decls_by_file, header_decls=None):
    """header_decls: declarations of headers outside decls_by_file (so a
    run over some paths still knows what the headers declare)."""
    declared = set()
    for path, decls in list(decls_by_file.items()) + \
            list((header_decls or {}).items()):
        if path.endswith(HEADER_EXTS):
            for d in decls:
                if not d.is_definition and not d.qualified:
                    declared.add((d.scope, d.name))
    violations = []
    for path, decls in decls_by_file.items():
        seen_here = set()
        for d in decls:
            key = (d.scope, d.name)
            if d.nodiscard or d.qualified:
                pass
            elif d.is_friend and not d.is_definition:
                pass
            elif d.is_definition and not d.in_class and \
                    (key in declared or key in seen_here):
                pass
            else:
                violations.append(d)
            if not d.is_definition:
                seen_here.add(key)
    return violations


def collect(root, paths):
    files = []
    for p in paths:
        full = os.path.join(root, p)
        if os.path.isfile(full):
            files.append(p)
        elif os.path.isdir(full):
            for dirpath, dirnames, filenames in os.walk(full):
                dirnames.sort()
                for f in sorted(filenames):
                    if f.endswith(SOURCE_EXTS):
                        files.append(os.path.relpath(os.path.join(dirpath, f), root))
    return files


# --- self-test -------------------------------------------------------------
# A small tree in which every line marked @ND@ lacks the attribute (the bad
# version) or has it (the fixed version); everything else is a construct
# the check must leave alone. The bad tree must fail with exactly the marked
# lines, the fixed tree must pass: the check cannot pass vacuously.
SELF_TEST_FILES = {
    'include/viommu/demo/widget.h': """\
#ifndef VIOMMU_DEMO_WIDGET_H_
#define VIOMMU_DEMO_WIDGET_H_
#include <functional>
#define DECLARE_RUN(x) absl::Status x();
namespace viommu::demo {
// absl::Status InAComment();
/* absl::Status InABlockComment(); */
inline constexpr const char* kText = "absl::Status InAString();";
inline constexpr char kQuote = '"';
inline constexpr int kBig = 1'000'000;
enum class Kind { kA, kB };
class Widget {
 public:
  @ND@static absl::StatusOr<std::unique_ptr<Widget>> Create(int n);
  virtual ~Widget() = default;
  @ND@virtual absl::Status Start() = 0;
  @ND@absl::StatusOr<
      std::map<int, std::string>>
  Lookup(int key) const;
  @ND@absl::Status
  MultiLine(int a,
            int b) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  [[nodiscard]] absl::Status AlreadyMarked();
  [[nodiscard("an error")]] virtual absl::Status AlsoMarked();
  const absl::Status& last_error() const { return last_; }
  absl::Status* mutable_error();
  std::function<absl::Status(int)> callback_;
  std::vector<absl::StatusOr<int>> Results();
  absl::Status (*raw_fn_)(int) = nullptr;
  @ND@friend absl::Status Swap(Widget& a, Widget& b) { return {}; }
  friend absl::Status Helper(Widget& w);
  template <typename T>
  @ND@absl::StatusOr<T> Get(std::string_view key);
  @ND@template <typename T> static absl::Status Put(T value);
 protected:
  @ND@absl::Status OnStop() { return absl::OkStatus(); }
 private:
  absl::Status last_;
  absl::Status other_{absl::OkStatus()};
  struct Hooks {
    @ND@virtual absl::Status Hook();
  };
};
class Fast final : public Widget {
 public:
  @ND@absl::Status Start() override;
};
@ND@absl::Status FreeFunction(int x);
@ND@inline absl::Status InlineHelper() { return absl::OkStatus(); }
@ND@auto Trailing(int x) -> absl::Status;
using Callback = absl::Status(int);
using CallbackOr = absl::StatusOr<int>(int);
[[nodiscard]] absl::Status Declared(int x);
}  // namespace viommu::demo
#endif
""",
    'util/widget.cc': """\
#include "viommu/demo/widget.h"
namespace viommu::demo {
namespace {
@ND@absl::Status LocalHelper(int x) {
  return x > 0 ? absl::OkStatus() : absl::InvalidArgumentError("x");
}
@ND@static absl::StatusOr<int> Twice(int v) { return 2 * v; }
const auto kCheck = [](int) -> absl::Status { return absl::OkStatus(); };
constexpr const char* kRaw = R"(absl::Status InARawString();)";
}  // namespace
absl::StatusOr<std::unique_ptr<Widget>> Widget::Create(int n) {
  auto lambda = [](int v) -> absl::Status { return absl::OkStatus(); };
  absl::Status s(absl::StatusCode::kInternal, "x");
  struct Local { absl::Status Run(); };
  return nullptr;
}
absl::Status Fast::Start() { return absl::OkStatus(); }
absl::Status Declared(int x) { return absl::OkStatus(); }
template <typename T>
absl::StatusOr<T> Widget::Get(std::string_view key) {
  return T{};
}
absl::StatusOr<
    std::map<int, std::string>> Widget::Lookup(int key) const {
  return {};
}
@ND@absl::Status DefinedHereOnly(int x) { return absl::OkStatus(); }
}  // namespace viommu::demo
""",
    # A layer added later is scanned without being listed anywhere.
    'newlayer/engine.h': """\
namespace viommu::newlayer {
@ND@absl::Status Run();
}  // namespace viommu::newlayer
""",
    # Not scanned: a build tree, third-party wraps.
    'build-demo/build.ninja': '',
    'build-demo/generated.cc': 'absl::Status Generated() { return {}; }\n',
    'subprojects/wrap/wrap.h': 'absl::Status ThirdParty();\n',
    'tests/fakes/fake_widget.h': """\
#include "viommu/demo/widget.h"
namespace viommu::demo {
class FakeWidget final : public Widget {
 public:
  @ND@absl::Status Start() override { return absl::OkStatus(); }
  @ND@static absl::StatusOr<int>
  Count();
};
}  // namespace viommu::demo
""",
}


def self_test():
    script = os.path.abspath(__file__)
    failures = []
    with tempfile.TemporaryDirectory(prefix='check-nodiscard-') as tmp:
        for fixed in (False, True):
            root = os.path.join(tmp, 'fixed' if fixed else 'bad')
            expected = set()
            for rel, text in SELF_TEST_FILES.items():
                for n, line in enumerate(text.split('\n'), 1):
                    if '@ND@' in line:
                        expected.add('%s:%d: function returns absl::Status '
                                     'but is not [[nodiscard]]' % (rel, n))
                text = text.replace('@ND@', '[[nodiscard]] ' if fixed else '')
                os.makedirs(os.path.dirname(os.path.join(root, rel)),
                            exist_ok=True)
                with open(os.path.join(root, rel), 'w') as fh:
                    fh.write(text)
            r = subprocess.run([sys.executable, script, '--root', root],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            got = set(r.stdout.splitlines())
            if fixed:
                if r.returncode != 0 or got:
                    failures.append('fixed tree: exit %d, reported:\n  %s'
                                    % (r.returncode, '\n  '.join(sorted(got))))
            else:
                if r.returncode != 1:
                    failures.append('bad tree: exit %d, expected 1'
                                    % r.returncode)
                for line in sorted(expected - got):
                    failures.append('bad tree: not reported: ' + line)
                for line in sorted(got - expected):
                    failures.append('bad tree: reported wrongly: ' + line)
                nbad = len(expected)
    for f in failures:
        print('check-nodiscard self-test: ' + f)
    if failures:
        return 1
    print('check-nodiscard self-test: %d seeded declarations reported, the '
          'fixed tree and every exempt construct pass' % nbad)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    ap.add_argument('--self-test', action='store_true',
                    help='check the check on a seeded temporary tree')
    ap.add_argument('paths', nargs='*')
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    paths = args.paths or default_paths(args.root)
    files = collect(args.root, paths)
    if not files:
        print('check-nodiscard: no C++ sources under %s' % args.root,
              file=sys.stderr)
        return 2
    decls_by_file = {}
    total = 0
    for f in files:
        with open(os.path.join(args.root, f), encoding='utf-8',
                  errors='replace') as fh:
            decls = scan(f, fh.read())
        decls_by_file[f] = decls
        total += len(decls)
    # A run over some paths still reads every header of the default set
    # for declarations, so a definition of a declared function stays exempt.
    header_decls = {}
    if args.paths:
        for f in collect(args.root, default_paths(args.root)):
            if f.endswith(HEADER_EXTS) and f not in decls_by_file:
                with open(os.path.join(args.root, f), encoding='utf-8',
                          errors='replace') as fh:
                    header_decls[f] = scan(f, fh.read())
    violations = find_violations(decls_by_file, header_decls)
    for d in violations:
        print('%s:%d: function returns absl::Status but is not [[nodiscard]]'
              % (d.path, d.line))
    print('check-nodiscard: %d files, %d Status-returning declarations, %d '
          'without [[nodiscard]]' % (len(files), total, len(violations)),
          file=sys.stderr)
    return 1 if violations else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
