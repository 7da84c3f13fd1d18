"""Tools that build modules outside the code generator: clang and wasm-ld for C kernels,
Binaryen (wasm-merge, wasm-opt) for merged and lowered multi-memory modules, and the npm
installs some of them come from. Each finds its tool or says how to install it."""
