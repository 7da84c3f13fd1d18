"""ML workloads: kernel families (`kernels/`) and multi-dispatch models (`models/`)."""
