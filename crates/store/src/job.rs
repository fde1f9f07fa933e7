//! A unit of work sent to a connection's thread, and the way its answer comes back.
//!
//! A job runs in two phases because of group commit: [`Job::run`] executes the caller's closure
//! inside the batch's transaction and keeps its result; [`Job::reply`] sends that result only
//! once the whole batch's fate is known. If the batch did not become durable, a job that had
//! succeeded is answered with the batch's error instead, so nothing is acknowledged before it is
//! durable.
//!
//! A closure that panics is caught so that one faulty job cannot take the writer thread (and
//! every other caller) down; its savepoint is rolled back and the panic resumes in the caller's
//! task, where it belongs.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use tokio::sync::oneshot;

use crate::{Error, Tx};

/// Work queued for a connection's thread, with its reply channel.
pub(crate) trait Job: Send {
    /// Runs the caller's closure once; returns whether it succeeded (its writes are kept).
    fn run(&mut self, tx: &mut dyn Tx) -> bool;

    /// Replaces the result of a job that ran and succeeded with `error`: the backend undid its
    /// writes after all (a statement of it failed and the job went on regardless).
    fn overrule(&mut self, error: Error);

    /// Answers the caller. `transaction` says whether the transaction the job ran in became
    /// durable (writes) or was read consistently (reads).
    fn reply(self: Box<Self>, transaction: Result<(), Error>);
}

/// What a job's closure produced: its result, or the payload of its panic.
type Outcome<T, E> = Result<Result<T, E>, Box<dyn Any + Send>>;

/// A job wrapping a caller's closure of type `F`.
struct Closure<F, T, E> {
    /// The closure, until it runs.
    work: Option<F>,
    /// What it produced, once it ran.
    outcome: Option<Outcome<T, E>>,
    /// Where the caller waits.
    answer: oneshot::Sender<Outcome<T, E>>,
}

/// Wraps a closure as a job; the receiver yields its answer (see [`answer`]).
pub(crate) fn job<F, T, E>(work: F) -> (Box<dyn Job>, oneshot::Receiver<Outcome<T, E>>)
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let (answer, receiver) = oneshot::channel();
    let job = Closure {
        work: Some(work),
        outcome: None,
        answer,
    };
    (Box::new(job), receiver)
}

/// Runs `work` as a job on a blocking thread once one of `permits` is free (`run` gives it a
/// pooled connection) and waits for its answer: both read pools' one way of reading. The permit
/// moves into the blocking task, so it is released when the read ends even if the caller stops
/// waiting; a closed semaphore (a closing store) is [`Error::Closed`].
pub(crate) async fn on_a_pooled_connection<F, T, E>(
    permits: &std::sync::Arc<tokio::sync::Semaphore>,
    work: F,
    run: impl FnOnce(Box<dyn Job>) + Send + 'static,
) -> Result<T, E>
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let permit = std::sync::Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|_| E::from(Error::Closed))?;
    let (job, answer_of) = job(work);
    let _detached = tokio::task::spawn_blocking(move || {
        run(job);
        drop(permit);
    });
    answer(answer_of).await
}

/// Waits for a job's answer, resuming its panic here if it panicked. A job dropped unanswered
/// means its connection's thread stopped: [`Error::Closed`].
pub(crate) async fn answer<T, E>(receiver: oneshot::Receiver<Outcome<T, E>>) -> Result<T, E>
where
    E: From<Error>,
{
    match receiver.await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => panic::resume_unwind(panic),
        Err(_) => Err(E::from(Error::Closed)),
    }
}

impl<F, T, E> Job for Closure<F, T, E>
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    fn run(&mut self, tx: &mut dyn Tx) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(tx)));
        let succeeded = matches!(outcome, Ok(Ok(_)));
        self.outcome = Some(outcome);
        succeeded
    }

    fn overrule(&mut self, error: Error) {
        if matches!(self.outcome, Some(Ok(Ok(_)))) {
            self.outcome = Some(Ok(Err(E::from(error))));
        }
    }

    fn reply(self: Box<Self>, transaction: Result<(), Error>) {
        let answer = match (self.outcome, transaction) {
            // The job's own failure or panic stands: its writes were rolled back either way.
            (Some(Ok(Err(error))), _) => Ok(Err(error)),
            (Some(Err(panic)), _) => Err(panic),
            (Some(Ok(Ok(value))), Ok(())) => Ok(Ok(value)),
            (Some(Ok(Ok(_))), Err(error)) | (None, Err(error)) => Ok(Err(E::from(error))),
            (None, Ok(())) => Ok(Err(E::from(Error::Backend(
                "a job was answered without having run".to_owned(),
            )))),
        };
        // The caller may have stopped waiting (its future was dropped); the work stands anyway.
        let _ = self.answer.send(answer);
    }
}
