//! ticket-train: forward and backward passes of the MLP, Adam and SGD, the trainer, and the
//! iterative-magnitude-pruning driver that finds winning tickets.

pub mod plot;
