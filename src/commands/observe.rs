//! What the command line does while a network trains: a progress bar with loss and accuracy,
//! checkpoints written as snapshots arrive, and a stop request when Ctrl-C is pressed.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use ticket_core::Network;
use ticket_train::run_files::CheckpointSaver;
use ticket_train::{EvalRecord, Observer};

/// Set by the Ctrl-C handler; polled between training steps.
pub fn interrupted() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        // A second Ctrl-C while stopping kills the process the default way.
        let _ = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        flag
    })
    .clone()
}

/// A progress bar over `total` steps, drawn on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(total: usize, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {per_sec:>10} eta {eta:>4} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Progress bar + checkpoints + Ctrl-C for one training run.
pub struct CliObserver {
    pub bar: ProgressBar,
    pub saver: CheckpointSaver,
    stop: Arc<AtomicBool>,
}

impl CliObserver {
    pub fn new(bar: ProgressBar, saver: CheckpointSaver) -> Self {
        CliObserver { bar, saver, stop: interrupted() }
    }
}

impl Observer for CliObserver {
    fn on_step(&mut self, iteration: usize, _loss: f64) {
        if iteration.is_multiple_of(20) {
            self.bar.set_position(iteration as u64);
        }
    }

    fn on_eval(&mut self, r: &EvalRecord) {
        self.bar.set_position(r.iteration as u64);
        self.bar.set_message(format!(
            "val loss {:.4} acc {:.2}% | test acc {:.2}%",
            r.validation_loss,
            100.0 * r.validation_accuracy,
            100.0 * r.test_accuracy
        ));
    }

    fn on_snapshot(
        &mut self,
        iteration: usize,
        last: bool,
        net: &Network,
    ) -> ticket_train::Result<()> {
        self.saver.save(iteration, last, net).map(|_| ())
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
