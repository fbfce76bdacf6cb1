"""The app shell in real Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_marketer_logs_in_and_sees_the_dashboard(login: Any, marketer_user: User) -> None:
    page = login(marketer_user)
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    nav = page.get_by_role("navigation", name="Main")
    for item in ("Dashboard", "Contacts", "Segments", "Text Messages", "Campaigns", "Settings"):
        assert nav.get_by_role("link", name=item).is_visible()
    assert page.get_by_text("Marketer").is_visible()


def test_navigation_folds_into_a_menu_on_a_phone(login: Any, marketer_user: User) -> None:
    page = login(marketer_user)
    page.set_viewport_size({"width": 390, "height": 800})
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()
    page.get_by_role("button", name="Menu").click()
    assert nav.get_by_role("link", name="Contacts").is_visible()


def test_wrong_password_shows_an_error(page: Any, live_server: Any, marketer_user: User) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("mark")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    assert page.url.endswith("/login/")


def test_the_stylesheet_paints_the_brand_colour(page: Any, live_server: Any) -> None:
    # A broken custom property silently turns every primary button white-on-white; look at the real pixels' colour.
    page.goto(f"{live_server.url}/login/")
    colour = page.get_by_role("button", name="Log in").evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(79, 70, 229)"
