"""Kernel code generation.

Kernels are written once against `FunctionBuilder`; every buffer access goes through the
`MemoryLowering` a strategy supplies (direct load/store on a memory, host call, paged
cache). The output is WAT text, assembled to wasm bytes with `wasmtime.wat2wasm`.

Imports nothing of the project but itself (and `harness.core`).
"""

from harness.codegen.expr import Expr, f32, i32, op
from harness.codegen.function import Buffer, FunctionBuilder, Var
from harness.codegen.kernel import BufferParam, Kernel, KernelModule, build_kernel_module
from harness.codegen.lowering import DirectLowering, MemoryLowering
from harness.codegen.module import ModuleBuilder, assemble

__all__ = [
    "Buffer", "BufferParam", "DirectLowering", "Expr", "FunctionBuilder", "Kernel",
    "KernelModule", "MemoryLowering", "ModuleBuilder", "Var", "assemble",
    "build_kernel_module", "f32", "i32", "op",
]
