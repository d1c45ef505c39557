"""Every user-facing failure is an :class:`InsightRayError`.

Each error carries one line that says what is wrong and what to do about it. The CLI prints
that line and exits non-zero; the service turns it into a 4xx JSON answer. Nothing here may
hold patient data: messages name files and tags, never tag values such as names or dates.

Example:
    >>> try:
    ...     raise EmptyFileError("scan.dcm", "the file is empty (0 bytes)", "re-export it")
    ... except InsightRayError as err:
    ...     print(err)
    scan.dcm: the file is empty (0 bytes). Re-export it.
"""

from __future__ import annotations


class InsightRayError(Exception):
    """Base of every error a user can cause; its message is one line: what, then what to do."""

    exit_code = 2

    def __init__(self, subject: str, problem: str, hint: str) -> None:
        self.subject = subject
        self.problem = problem
        self.hint = hint
        hint_text = hint[:1].upper() + hint[1:] if hint else ""
        message = f"{subject}: {problem}." + (f" {hint_text}." if hint_text else "")
        super().__init__(" ".join(message.split()))


class InputError(InsightRayError):
    """An input file or folder cannot be used as given."""


class InputNotFoundError(InputError):
    """The path does not exist or cannot be read."""


class EmptyFileError(InputError):
    """The file has no content."""


class UnsupportedFormatError(InputError):
    """The file is neither DICOM nor a supported image format (PNG, JPEG, TIFF)."""


class CorruptFileError(InputError):
    """The file looks like a supported format but is truncated or damaged."""


class NoPixelDataError(InputError):
    """A DICOM object without an image: a report, an RT structure set, a presentation state..."""


class UnsupportedTransferSyntaxError(InputError):
    """The DICOM pixel data uses a compression no installed decoder handles."""


class MultiFrameError(InputError):
    """A multi-frame or 3-D input where a single 2-D radiograph is expected."""

    def __init__(self, subject: str, frames: int) -> None:
        self.frames = frames
        super().__init__(
            subject,
            f"it holds {frames} frames, but a single 2-D radiograph is expected",
            f"choose one with --frame N (0 to {frames - 1})",
        )


class ImageSizeError(InputError):
    """Zero, negative or absurd image dimensions (a guard against decompression bombs)."""


class ConfigError(InsightRayError):
    """A configuration value or file is invalid."""


class MissingExtraError(ConfigError):
    """An optional dependency (an ``insightray[extra]``) is not installed."""


class ServiceError(InsightRayError):
    """A request to the service cannot be carried out as asked."""


class AuthenticationError(ServiceError):
    """Wrong or missing credentials, or an expired or forged token."""


class PermissionDeniedError(ServiceError):
    """The user is known but their role does not allow the action."""


class NotFoundError(ServiceError):
    """The requested user, study, result or record does not exist."""


class ConflictError(ServiceError):
    """The thing to create exists already (a username, a model version)."""


class WeakPasswordError(ServiceError):
    """A password is too short or otherwise unfit."""


class RateLimitedError(ServiceError):
    """Too many requests from one user or key; try again after ``retry_after_s`` seconds."""

    def __init__(self, subject: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            subject, "too many requests", f"wait {retry_after_s:.1f} s before trying again"
        )


class ServiceUnavailableError(ServiceError):
    """A backing service (database, Redis, a model) cannot be reached right now."""


class UpstreamError(ServiceError):
    """A backing system (a PACS) answered, but refused or failed the request."""


class StorageError(InsightRayError):
    """Stored data cannot be read or written."""


class TamperedDataError(StorageError):
    """Stored data fails its integrity check: it was altered, truncated or swapped."""


class PayloadTooLargeError(InputError):
    """An upload is larger than the service accepts."""


class OutOfDistributionError(InputError):
    """An image is unlike what the model was trained on, and the service refuses such images."""


class FederatedRunError(InsightRayError):
    """A Flower process failed, or a federated run did not finish."""
