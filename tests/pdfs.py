"""The one way tests make PDFs: reportlab, one page per text, with a real text layer."""

from __future__ import annotations

from io import BytesIO

from reportlab.lib import pdfencrypt
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def pdf_bytes(
    pages: list[str | None],
    *,
    title: str | None = None,
    user_password: str | None = None,
    owner_password: str | None = None,
    invariant: bool = True,
) -> bytes:
    """A PDF made with reportlab: one page per item; None makes a page of shapes only.

    ``invariant``: the same pages give the same bytes.  Off, each PDF carries its own
    creation time and id, so two made alike are two different files (not deduplicated).
    """
    encrypt = None
    if user_password is not None or owner_password is not None:
        encrypt = pdfencrypt.StandardEncryption(
            user_password or "", ownerPassword=owner_password or "owner", strength=128
        )
    buffer = BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=int(invariant), encrypt=encrypt)
    if title:
        pdf.setTitle(title)
    for page_text in pages:
        if page_text is None:
            # What a scan without OCR looks like to a text extractor: marks, no text.
            pdf.rect(72, 72, 300, 400, fill=1)
            pdf.circle(300, 600, 50)
        else:
            lines = pdf.beginText(72, 770)
            lines.setFont("Helvetica", 11)
            for line in page_text.split("\n"):
                lines.textLine(line)
            pdf.drawText(lines)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()
