"""Pages: one module per page, each with a ``create()`` that registers its routes at start-up."""

from pages import (
    account,
    admin,
    auth_routes,
    billing,
    deletion,
    errors,
    export_routes,
    gallery,
    history,
    home,
    legal,
    media_routes,
    password,
    policy_update,
    privacy,
    receipt_routes,
    signin,
    signup,
    studio,
    unsubscribe,
    verify,
    welcome,
)


def register_all() -> None:
    """Register every page (called by :mod:`rupali.web` on each start, including each test run)."""
    for module in (errors, home, legal, billing, receipt_routes, studio, gallery, history, signin, signup, password,
                   verify, welcome, account, admin, auth_routes, media_routes, privacy, export_routes, deletion,
                   unsubscribe, policy_update):
        module.create()
