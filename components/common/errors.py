"""The project's one exception hierarchy.

    PipelineError            anything this project raises on purpose
    ├── InputError           bad input the user can fix (file, column, parameter, URI,
    │                        credentials); permanent: never retried
    ├── TransientError       a network failure that may pass (refused/reset connection,
    │                        timeout, HTTP 5xx or 429); retried with backoff
    ├── TrainingError        training could not finish (a local worker died, a TrainJob/TFJob
    │                        failed or ran out of time)
    └── ServingError         a model server refused or failed (a rollout that did not
                             become ready, a request the server rejected)

The command line turns a `PipelineError` into one `error: ...` line and a
non-zero exit; inside a KFP step the message is the last line of the step's log.
"""


class PipelineError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PipelineError, ValueError):
    """Bad input that the user can fix: missing file, wrong column, bad parameter."""


class TransientError(PipelineError):
    """A failure that may pass if the same call is tried again later."""


class TrainingError(PipelineError):
    """Training could not finish: a worker process died, or a TrainJob or TFJob failed or timed out."""


class ServingError(PipelineError):
    """A model server refused a request, or a serving rollout failed."""
