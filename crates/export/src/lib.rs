//! ticket-export: masked dense checkpoints to CSR safetensors (f32/f16/bf16 values, u16/u32
//! indices) and the compression report.
