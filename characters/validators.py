"""Validators for authored character data and uploaded images."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from PIL import Image, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}
MAX_IMAGE_PIXELS = 4096 * 4096


def validate_avatar(file: File) -> None:  # type: ignore[type-arg]
    """Accept only small, real PNG/JPEG/WEBP/GIF images (the extension alone proves nothing)."""
    if file.size is not None and file.size > settings.AVATAR_MAX_BYTES:
        limit_mb = settings.AVATAR_MAX_BYTES / (1024 * 1024)
        raise ValidationError(f"The image is too large: the limit is {limit_mb:.0f} MB.")
    try:
        file.seek(0)
        with Image.open(file) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationError("The file is not a readable image.") from None
    finally:
        file.seek(0)
    if image_format not in ALLOWED_IMAGE_FORMATS:
        raise ValidationError("Use a PNG, JPEG, WEBP or GIF image.")
    if width * height > MAX_IMAGE_PIXELS:
        raise ValidationError("The image is too large: at most 4096 × 4096 pixels.")


def validate_string_list(value: object) -> None:
    """A JSON field that must hold a list of short strings (tags, greetings)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Expected a list of strings.")
    if len(value) > 100:
        raise ValidationError("At most 100 items.")
