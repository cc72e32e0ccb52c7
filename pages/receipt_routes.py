"""Receipt downloads: ``/billing/receipts/<order>.pdf`` for the order's owner."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from nicegui import app
from starlette.concurrency import run_in_threadpool

from rupali import image_files, receipts
from rupali.config import get_settings
from rupali.db import transact

RECEIPT_PATH = "/billing/receipts/{order_id}.pdf"


def create() -> None:
    """Register the receipt route."""

    @app.get(RECEIPT_PATH, include_in_schema=False)
    async def receipt(request: Request, order_id: str) -> Response:
        # The gate admits only signed-in people (others are sent to sign in); whose order it is, is checked here:
        # someone else's, an unknown or malformed id and an unpaid order are all the same 404.
        order = await run_in_threadpool(transact, receipts.owned_order, request.state.auth.user.id, order_id)
        if order is None:
            return image_files.NOT_FOUND
        # Tens of milliseconds (fpdf2 reads the fonts): off the event loop.
        data = await run_in_threadpool(receipts.receipt_pdf, get_settings(), order)
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{receipts.receipt_filename(order)}"',
            "Cache-Control": "private, no-store",
        })
