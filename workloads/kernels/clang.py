"""`toolchain=clang`: a kernel family's C twin (`workloads/kernels/c/`), built by clang 19
for wasm32 (`harness.toolchain.clang`) instead of by the project's code generator.

The C kernels take the same buffers in the same order (the kernel ABI), compute the same
function, and are checked against the same NumPy reference and tolerance. The strategy
decides the link form: a module of its own memory (`per-module`), or one importing the
device's memory (`shared`, `per-device`) with the C stack kept below the tensors. LLVM
has no multi-memory, and plain C cannot make every access a host call: `multi-memory`
and `host-call` are unsupported with that reason (`multi-memory:built=merge` makes a
multi-memory module out of a clang kernel with Binaryen).

Workloads that differ only in `toolchain` join one comparison group (`TWIN_PARAM`), so
clang's kernel and the generator's pair sample by sample on every engine and strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.codegen import BufferParam
from harness.codegen.kernel import ExternalKernel, KernelModule
from harness.codegen.lowering import MemoryForm
from harness.core.errors import SpecError
from harness.plugins.params import Param
from harness.toolchain.clang import STACK_BYTES, build_c_kernel
from workloads.kernels.isa import isa_features

C_DIR = Path(__file__).resolve().parent / "c"
TOOLCHAINS = ("codegen", "clang")
TOOLCHAIN_PARAM = Param(
    "toolchain", "choice", "codegen", "codegen: the project's code generator; clang: the "
    "same kernel in C (workloads/kernels/c), built by clang 19 for wasm32 (simd or scalar)",
    choices=TOOLCHAINS)


def check_clang_isa(params: Mapping[str, object]) -> None:
    """Refuse an ISA the C kernels are not written for, before any work."""
    if params.get("toolchain") == "clang" and params.get("isa") not in ("simd", "scalar"):
        raise SpecError(f"toolchain=clang builds isa=simd or isa=scalar, not "
                        f"isa={params.get('isa')}")


class ClangKernel(ExternalKernel):
    """One C kernel at one shape (its `-D` constants) for one ISA."""

    def __init__(self, source: str, label: str, buffers: tuple[BufferParam, ...],
                 defines: Mapping[str, int | float], isa: str) -> None:
        self.source = C_DIR / f"{source}.c"
        self.name = f"clang_{label}_{isa}"
        self.buffers = buffers
        self.defines = dict(defines)
        self.isa = isa
        self.features = isa_features(isa)
        self.reserved_bytes = STACK_BYTES

    def build_module(self, form: MemoryForm) -> KernelModule:
        built = build_c_kernel(self.source, self.defines, self.isa, form, include=(C_DIR,))
        return KernelModule(name=self.name, wat="", wasm=built.wasm, export="run",
                            args=tuple(self.params()), features=self.features)
