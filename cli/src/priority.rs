//! Who gets the CPU first when one process runs everything (`cadastre up`).
//!
//! On a laptop (or this 2-core machine) the harvester, the processor, the search indexer and
//! the store's writer all want the same cores during an import, and the writer is its
//! bottleneck: each of its transactions waits for the one before. With every thread at the same
//! priority the writer's threads spent a quarter of a 300,000-entity import runnable but not
//! running. Work that can wait (harvesting, processing, indexing) therefore runs on a runtime
//! of its own whose threads have a lower priority (a higher nice value), and the writer on a
//! thread of its own; serving reads keeps the normal priority. Idle cores still go to the
//! background work, so it runs as fast as before whenever nothing else wants the CPU.

use std::future::Future;

/// How much lower the background threads' priority is, in Linux nice steps (each is about
/// 1.25 times less CPU time against a busy thread of the normal priority; 19 is the lowest).
const BACKGROUND_NICE: i32 = 10;

/// A multi-threaded runtime whose threads (and every thread they start: tantivy's indexing
/// and merge threads, git) run at a lower priority. Shut down without waiting when dropped,
/// so dropping it inside another runtime is safe.
#[derive(Debug)]
pub struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    pub fn new() -> std::io::Result<BackgroundRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("background")
            .on_thread_start(lower_this_threads_priority)
            .enable_all()
            .build()?;
        Ok(BackgroundRuntime(Some(runtime)))
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime is only taken when dropped")
            .handle()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`] from where it is (a process
/// started with `nice` stays below its background threads' starting point). Linux keeps a
/// nice value per thread; elsewhere the call would lower the whole process, so it is left
/// alone there.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let lowered = getpriority_process(None)
            .and_then(|nice| setpriority_process(None, (nice + BACKGROUND_NICE).min(19)));
        if let Err(error) = lowered {
            tracing::debug!(%error, "cannot lower a background thread's priority");
        }
    }
}

/// Runs `task` to completion on a new thread with a single-threaded runtime of its own, so
/// its steps never queue behind other tasks (the store's writer: every statement of its
/// transactions is a round trip through this task). Answers with the task's result.
pub fn on_own_thread<T, F>(
    name: &str,
    task: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<tokio::sync::oneshot::Receiver<T>>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start a runtime for a thread of its own");
                    return;
                }
            };
            let _ = answer.send(runtime.block_on(task()));
        })?;
    Ok(answered)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value of the calling thread.
    fn this_threads_nice() -> i32 {
        rustix::process::getpriority_process(None).expect("getpriority")
    }

    #[test]
    fn background_threads_and_the_threads_they_start_run_at_a_lower_priority() {
        let normal = this_threads_nice();
        let expected = (normal + BACKGROUND_NICE).min(19);
        let background = BackgroundRuntime::new().expect("runtime");
        let handle = background.handle();
        let task = handle
            .block_on(handle.spawn(async { this_threads_nice() }))
            .expect("task");
        assert_eq!(task, expected);
        let started = handle
            .block_on(handle.spawn_blocking(|| {
                std::thread::spawn(this_threads_nice)
                    .join()
                    .expect("thread")
            }))
            .expect("blocking task");
        assert_eq!(
            started, expected,
            "threads started by background threads inherit it"
        );
        assert_eq!(this_threads_nice(), normal, "the caller keeps its priority");
    }

    #[tokio::test]
    async fn a_task_on_its_own_thread_answers() {
        let answered = on_own_thread("own-thread-test", || async {
            std::thread::current().name().map(str::to_owned)
        })
        .expect("thread");
        assert_eq!(
            answered.await.expect("answer").as_deref(),
            Some("own-thread-test")
        );
    }
}
