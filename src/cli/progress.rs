//! Progress on stderr for anything that takes more than a second: one spinner line with
//! what is going on and the time so far, redrawn in place by a small thread, erased when
//! done. Nothing at all is drawn when stderr is not a terminal, so logs, pipes and CI output
//! stay clean.
//!
//! ```text
//!   Progress::start("waiting for convergence") ── 1 s ──► ⠹ waiting for convergence  1.4s
//!   progress.set("trial 3/100")                             ⠼ trial 3/100  0.2s
//!   drop / finish ───────────────────────────────────────► line erased
//! ```
//!
//! Output printed to stdout while a spinner runs goes through [`clear_line`] first (the
//! demo's lines do), so the two never share a line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Nothing is drawn for work that ends sooner than this.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(100);
const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/// Erases the current terminal line and returns to its start.
const ERASE: &str = "\r\x1b[2K";

/// Whether a spinner line is on screen now (so stdout output must erase it first).
static DRAWN: AtomicBool = AtomicBool::new(false);

/// The spinner line for `frame`, `message` and `elapsed` (pure).
pub fn line(frame: usize, message: &str, elapsed: Duration) -> String {
    format!(
        "{ERASE}{} {message}  {:.1}s",
        FRAMES[frame % FRAMES.len()],
        elapsed.as_secs_f64()
    )
}

/// Erases the spinner line, if one is drawn, before something else is printed; the next
/// tick draws it again below.
pub fn clear_line() {
    if DRAWN.swap(false, Ordering::AcqRel) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(ERASE.as_bytes());
        let _ = err.flush();
    }
}

struct Shared {
    message: Mutex<(String, Instant)>,
    done: AtomicBool,
}

/// A spinner on stderr until dropped (see the module documentation).
pub struct Progress {
    running: Option<(Arc<Shared>, JoinHandle<()>)>,
}

impl Progress {
    /// Starts a spinner for `message`, shown after a second, only when stderr is a terminal.
    pub fn start(message: impl Into<String>) -> Progress {
        Self::start_if(std::io::stderr().is_terminal(), message)
    }

    /// [`Progress::start`], drawing only when `draw` is set.
    pub fn start_if(draw: bool, message: impl Into<String>) -> Progress {
        if !draw {
            return Progress { running: None };
        }
        let shared = Arc::new(Shared {
            message: Mutex::new((message.into(), Instant::now())),
            done: AtomicBool::new(false),
        });
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || spin(&s));
        Progress {
            running: spawned.ok().map(|t| (shared, t)),
        }
    }

    /// Shows `message` instead, with its own time (a new trial, a new step).
    pub fn set(&self, message: impl Into<String>) {
        if let Some((s, _)) = &self.running {
            *s.message.lock().unwrap_or_else(|e| e.into_inner()) = (message.into(), Instant::now());
        }
    }

    /// Stops and erases the spinner (dropping does the same).
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((s, t)) = self.running.take() {
            s.done.store(true, Ordering::Release);
            t.thread().unpark();
            let _ = t.join();
            clear_line();
        }
    }
}

fn spin(s: &Shared) {
    let began = Instant::now();
    let mut frame = 0;
    while !s.done.load(Ordering::Acquire) {
        std::thread::park_timeout(TICK);
        if s.done.load(Ordering::Acquire) || began.elapsed() < SHOW_AFTER {
            continue;
        }
        let text = {
            let m = s.message.lock().unwrap_or_else(|e| e.into_inner());
            line(frame, &m.0, m.1.elapsed())
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        DRAWN.store(true, Ordering::Release);
        frame += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_erases_what_was_there_and_shows_the_message_and_time() {
        let l = line(11, "waiting for convergence", Duration::from_millis(1450));
        assert!(l.starts_with(ERASE));
        assert!(l.contains("⠙ waiting for convergence"), "{l:?}");
        assert!(l.ends_with("1.4s") || l.ends_with("1.5s"), "{l:?}");
    }

    #[test]
    fn nothing_runs_when_not_drawing() {
        let p = Progress::start_if(false, "x");
        assert!(p.running.is_none());
        p.set("y");
        p.finish();
    }
}
