"""Pages: one module per page, each with a ``create()`` that registers its routes at start-up."""

from pages import (
    account,
    admin,
    admin_audit,
    admin_holds,
    admin_moderation,
    admin_ops,
    admin_support,
    admin_users,
    auth_routes,
    billing,
    confirm_email,
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
    support,
    unsubscribe,
    verify,
    welcome,
)


def register_all() -> None:
    """Register every page (called by :mod:`rupali.web` on each start, including each test run)."""
    for module in (errors, home, legal, billing, receipt_routes, studio, gallery, history, signin, signup, password,
                   confirm_email, verify, welcome, account, admin, admin_users, admin_audit, admin_ops,
                   admin_moderation, auth_routes, media_routes, privacy, export_routes, deletion, unsubscribe,
                   policy_update, support, admin_support, admin_holds):
        module.create()
