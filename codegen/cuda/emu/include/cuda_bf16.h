/* kiln CUDA emulator stub: kiln_cuda_emu.h (force-included first) provides the cuda_bf16.h names kiln uses. */
