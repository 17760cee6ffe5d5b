//! Progress of a long scan, for a progress bar or log lines. The library never prints.

/// Receives the scan's progress.
pub trait Progress: Sync {
    /// Called at each step.
    fn event(&self, event: Event<'_>);
}

/// One progress step.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage starts with `total` units of work.
    Stage {
        /// Stage name.
        name: &'a str,
        /// Units of work.
        total: u64,
    },
    /// Units of work done in the current stage.
    Advance(u64),
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {
    fn event(&self, _: Event<'_>) {}
}
