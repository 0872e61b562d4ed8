#!/usr/bin/env python3
"""Proves that clang's -Wthread-safety checks our lock annotations.

The clang tree (build-fuzz, -Dwerror=true in CI) compiles everything with
-Wthread-safety; this test shows the check has teeth. Each case is a tiny
seeded file compiled with `clang++ -fsyntax-only -Wthread-safety -Werror`
against the tree's headers: the violation must be rejected with a
thread-safety diagnostic and the fixed version must compile. It covers
util's Mutex (shared and exclusive) and SpinLock (also the VT-d
CacheLock), GUARDED_BY members and *Locked methods.

Usage: check_thread_safety.py SOURCE_ROOT
Exit 0 when every case behaves, 1 otherwise, 77 (skip) without clang++.
"""
import os
import shutil
import subprocess
import sys
import tempfile

PRELUDE = """
#include "absl/base/thread_annotations.h"
#include "viommu/util/mutex.h"
#include "viommu/util/spin_lock.h"
"""

# name -> (body with the violation, body fixed)
CASES = {
    "mutex_guarded_read": (
        """
class Counter {
 public:
  int Get() { return n_; }  // no lock
 private:
  viommu::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
int Use(Counter& c) { return c.Get(); }
""",
        """
class Counter {
 public:
  int Get() { viommu::ReaderMutexLock l(&mu_); return n_; }
 private:
  viommu::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
int Use(Counter& c) { return c.Get(); }
"""),
    "spinlock_guarded_write": (
        """
class Table {
 public:
  void Bump() { ++n_; }  // no lock
 private:
  viommu::SpinLock mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
void Use(Table& t) { t.Bump(); }
""",
        """
class Table {
 public:
  void Bump() { viommu::SpinLockGuard g(mu_); ++n_; }
 private:
  viommu::SpinLock mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
void Use(Table& t) { t.Bump(); }
"""),
    "locked_method_without_lock": (
        """
class Cache {
 public:
  void Flush() { ResetLocked(); }  // no lock
 private:
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { n_ = 0; }
  viommu::SpinLock mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
void Use(Cache& c) { c.Flush(); }
""",
        """
class Cache {
 public:
  void Flush() { viommu::SpinLockGuard g(mu_); ResetLocked(); }
 private:
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { n_ = 0; }
  viommu::SpinLock mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};
void Use(Cache& c) { c.Flush(); }
"""),
}


def compile_snippet(clang, root, tmp, name, body):
    path = os.path.join(tmp, name + ".cc")
    with open(path, "w") as f:
        f.write(PRELUDE + body)
    cmd = [clang, "-std=c++20", "-fsyntax-only", "-Wthread-safety", "-Werror",
           "-I", os.path.join(root, "util", "include"), path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stderr


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    clang = shutil.which(os.environ.get("CLANGXX", "clang++"))
    if clang is None:
        print("SKIP: clang++ not installed (apt-get install clang); the "
              "thread-safety analysis is clang's")
        return 77
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (bad, good) in CASES.items():
            rc, err = compile_snippet(clang, root, tmp, name + "_bad", bad)
            if rc == 0:
                print(f"FAIL {name}: the violation compiled")
                failures += 1
            elif "-Wthread-safety" not in err:
                print(f"FAIL {name}: rejected, but not by the thread-safety "
                      f"analysis:\n{err}")
                failures += 1
            else:
                print(f"ok   {name}: violation rejected")
            rc, err = compile_snippet(clang, root, tmp, name + "_good", good)
            if rc != 0:
                print(f"FAIL {name}: the fixed version does not compile:\n"
                      f"{err}")
                failures += 1
            else:
                print(f"ok   {name}: fixed version compiles")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
