"""The image package's errors: each a StackdError that names the image or blob and the fix."""

from __future__ import annotations

from stackd.errors import (
    NotFoundError,
    SpecError,
    StackdError,
    UnavailableError,
    UsageError,
)


class ReferenceError_(UsageError):
    """An image reference that does not parse (`Redis:7`, `a//b`, a bad digest)."""


class ImageNotFoundError(NotFoundError):
    """The image is not in the store (and was not to be pulled)."""


class BlobNotFoundError(NotFoundError):
    """A blob the store or a registry should hold is missing."""


class DigestMismatchError(StackdError):
    """Content did not hash to the digest it was announced under: corrupt or tampered."""


class LayerRejectedError(StackdError):
    """A layer tar would write outside its snapshot or carries something disallowed.

    The whole layer is refused; nothing of it is used.
    """


class UnsupportedMediaTypeError(StackdError):
    """A manifest, config or layer in a format stackd does not read."""


class MalformedImageError(StackdError):
    """A manifest, index or image config that is not what its kind must be (a field
    missing or of another type): a broken or hostile registry or archive."""


class RegistryError(UnavailableError):
    """The registry answered with an error, or could not be reached."""


class RegistryAuthError(StackdError):
    """The registry refused our credentials (or we had none and it wants some)."""


class ArchiveError(StackdError):
    """An image archive (docker save, OCI archive, rootfs tar) is malformed."""


class DockerfileError(SpecError):
    """A Dockerfile is wrong or uses something stackd does not support; names the line."""


class BuildError(StackdError):
    """A build step failed while running (a RUN exited non-zero, a COPY source is missing)."""
