"""Errors with one-line messages meant for users, and the closed sets of fault, failure and exit
kinds that metrics labels and the supervisor use (never free strings)."""

from __future__ import annotations

from enum import StrEnum


class FacestreamError(Exception):
    """A problem the user can fix: bad input, missing file, wrong config. `exit_code` is what
    the `facestream` command ends with when it stops on it (2, a user error, unless said)."""

    def __init__(self, message: str = "", exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Fault(StrEnum):
    """Why a message was refused: the `kind` label of `facestream_malformed_total`."""

    MALFORMED_FRAMES = "malformed_frames"  # fewer than two frames
    MALFORMED_TOPIC = "malformed_topic"  # topic frame not UTF-8 or not the camera id
    MALFORMED_HEADER = "malformed_header"  # not a JSON object, missing or mistyped field
    OVERSIZE = "oversize"  # header, part or declared image beyond the wire limits
    BAD_VERSION = "bad_version"  # schema_version is not the integer 1
    BAD_DTYPE = "bad_dtype"
    BAD_SHAPE = "bad_shape"
    BAD_PAYLOAD = "bad_payload"  # bytes that do not match their descriptor, NaN vectors
    BAD_FIELD = "bad_field"  # a field out of range
    UNKNOWN_KIND = "unknown_kind"  # a kind the wire format does not have
    UNEXPECTED_KIND = "unexpected_kind"  # a kind that never travels on this hop
    UNKNOWN_CAMERA = "unknown_camera"  # a camera id that is not in the config
    MODEL_MISMATCH = "model_mismatch"  # embeddings of another model than the gallery's
    BAD_FACE = "bad_face"  # a face that cannot be aligned (empty box, no landmarks)
    IMPLAUSIBLE_COUNTER = "implausible_counter"  # a counter on the wire that jumps further than any real gap
    WRONG_CAMERA = "wrong_camera"  # a camera's link carried another camera's message


class Failure(StrEnum):
    """A valid message that this stage could not process: the kind of `facestream_errors_total`."""

    DETECT_FAILED = "detect_failed"  # the detector raised on a frame


class ExitReason(StrEnum):
    """Why a stage process ended, written to its exit file for the supervisor (deploy/stage_main.py)."""

    FINISHED = "finished"  # its work is done: a file ended, or (a sink) every camera ended
    STOPPED = "stopped"  # asked to stop (SIGTERM, SIGINT)
    CAMERA_LOST = "camera_lost"  # gave up on its camera after camera.max_retries
    USER_ERROR = "user_error"  # a config or input the user must fix: restarting cannot help
    CRASHED = "crashed"  # an unexpected exception


# Exit codes by reason: non-zero for a lost camera, so that restart policies (systemd
# Restart=on-failure, Kubernetes) apply to a capture that gave up.
EXIT_CODES: dict[ExitReason, int] = {
    ExitReason.FINISHED: 0,
    ExitReason.STOPPED: 0,
    ExitReason.CRASHED: 1,
    ExitReason.USER_ERROR: 2,
    ExitReason.CAMERA_LOST: 3,
}


class WireError(ValueError):
    """A message that does not follow docs/wire.md; `kind` names the fault for counting."""

    def __init__(self, kind: Fault | str, message: str) -> None:
        fault = Fault(kind)  # a kind outside the enum is a programming error, not a new label
        super().__init__(f"{fault}: {message}")
        self.kind = fault
