// viommu/hw/core/irq.h — level-triggered interrupt lines (QEMU's qemu_irq).
//
//   class Ioapic final : public IrqSink { void SetIrq(int n, bool l) override; };
//   IrqLine intx(&ioapic, /*line=*/11);
//   intx.Raise();   // ioapic.SetIrq(11, true), once per level change
//
// A line only reports changes: raising a raised line does nothing.
// Threading: control context only.
#ifndef VIOMMU_HW_CORE_IRQ_H_
#define VIOMMU_HW_CORE_IRQ_H_

namespace viommu::hw {

// Receives level changes of numbered lines (an interrupt controller, or the
// qtest irq interceptor).
class IrqSink {
 public:
  IrqSink() = default;
  IrqSink(const IrqSink&) = delete;
  IrqSink& operator=(const IrqSink&) = delete;
  virtual ~IrqSink() = default;
  virtual void SetIrq(int line, bool level) = 0;
};

class IrqLine {
 public:
  // An unconnected line: level changes are tracked but go nowhere.
  IrqLine() = default;
  // `sink` is not owned and must outlive this line (or be disconnected).
  IrqLine(IrqSink* sink, int line) : sink_(sink), line_(line) {}

  void Connect(IrqSink* sink, int line) {
    sink_ = sink;
    line_ = line;
  }
  void Set(bool level) {
    if (level == level_) return;
    level_ = level;
    if (sink_ != nullptr) sink_->SetIrq(line_, level);
  }
  void Raise() { Set(true); }
  void Lower() { Set(false); }
  bool level() const { return level_; }
  int line() const { return line_; }

 private:
  IrqSink* sink_ = nullptr;  // not owned
  int line_ = -1;
  bool level_ = false;
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_IRQ_H_
