"""The card upload form (the user page and the admin share it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest

from characters.cards.containers import MAX_CARD_BYTES
from characters.cards.errors import CardError
from characters.cards.services import CardImport, character_import_card
from characters.cards.uploads import upload_too_large

LIMIT_MB = MAX_CARD_BYTES // (1024 * 1024)
TOO_LARGE = f"The file is too large: the limit is {LIMIT_MB} MB."


class CardImportForm(forms.Form):
    file = forms.FileField(
        label="Card file",
        required=False,
        help_text=f"A character card: PNG, JSON or CHARX, at most {LIMIT_MB} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".png,.apng,.json,.charx"}),
    )

    def __init__(self, *args: Any, too_large: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.too_large = too_large

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile | None = self.cleaned_data.get("file")
        if self.too_large or (upload is not None and (upload.size or 0) > MAX_CARD_BYTES):
            raise forms.ValidationError(TOO_LARGE)
        if upload is None:
            raise forms.ValidationError("Choose a card file to import.")
        return upload

    def card_bytes(self) -> tuple[bytes, str]:
        upload: UploadedFile = self.cleaned_data["file"]
        return upload.read(MAX_CARD_BYTES + 1), upload.name or ""


def card_import_from_request(request: HttpRequest) -> tuple[CardImportForm, CardImport | None]:
    """Bind the upload form to a request and import its card when the form is valid.

    Returns the form (with the card's error on `file` when it was refused) and the import, if
    one happened. Shared by the user's import page and the admin's.
    """
    posted = request.method == "POST"
    form = CardImportForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        too_large=posted and upload_too_large(request),
    )
    if not (posted and form.is_valid()):
        return form, None
    data, filename = form.card_bytes()
    try:
        return form, character_import_card(owner=request.user, data=data, filename=filename)
    except CardError as error:
        form.add_error("file", error.message)
        return form, None
