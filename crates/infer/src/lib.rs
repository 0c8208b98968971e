//! ticket-infer: loads and validates CSR safetensors and runs sparse (and, for comparison, dense)
//! inference on the CPU.
