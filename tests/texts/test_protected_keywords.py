"""Issue 17: the STOP, START and HELP families are protected; admins manage the others; matching folds case, width
and accents; an opt-out word in any language opts out of SMS and withdraws marketing consent in the consent log."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from contacts.consent import consent_record, consent_state
from contacts.models import ConsentEvent, ConsentSource, ConsentStatus, Contact, Suppression
from contacts.services import contact_is_dnc
from providers.twilio.testing import configure, inbound_params, post
from texts.keywords import BUILTIN_KEYWORDS, keyword_match, keyword_normalise
from texts.models import Keyword, ProtectedKeyword

pytestmark = pytest.mark.django_db

NUMBER = "+14155550123"
ALL_BUILTIN = [word for words in BUILTIN_KEYWORDS.values() for word in words]


@pytest.fixture(autouse=True)
def _twilio(settings: Any) -> None:
    configure(settings)


def _stop() -> Keyword:
    return Keyword.objects.get(word="STOP")


def test_the_migration_leaves_every_builtin_word_active_and_flagged() -> None:
    rows = {k.word: k for k in Keyword.objects.filter(builtin=True)}
    assert sorted(rows) == sorted(ALL_BUILTIN)
    assert all(k.active for k in rows.values())
    assert {rows[w].kind for w in BUILTIN_KEYWORDS["opt_out"]} == {"opt_out"}
    assert rows["YES"].kind == rows["UNSTOP"].kind == "opt_in"


# Who may change keywords


@pytest.mark.parametrize("word", ["STOP", "OPTOUT", "START", "HELP"])
def test_marketer_gets_403_deleting_or_disabling_a_builtin_word(marketer_client: Client, word: str) -> None:
    keyword = Keyword.objects.get(word=word)
    assert marketer_client.post(f"/settings/sms-keywords/{keyword.pk}/delete/").status_code == 403
    disable = {"word": word, "kind": keyword.kind, "auto_reply": ""}  # no "active": the box unticked
    assert marketer_client.post(f"/settings/sms-keywords/{keyword.pk}/", disable).status_code == 403
    keyword.refresh_from_db()
    assert keyword.active


def test_marketer_cannot_add_or_edit_custom_keywords_but_sees_the_list(marketer_client: Client) -> None:
    custom = Keyword.objects.create(word="HOURS", kind="custom", auto_reply="9-5")
    added = {"word": "PROMO", "kind": "custom", "auto_reply": "Hi", "active": "on"}
    assert marketer_client.post("/settings/sms-keywords/", added).status_code == 403
    assert marketer_client.get(f"/settings/sms-keywords/{custom.pk}/").status_code == 403
    assert marketer_client.post(f"/settings/sms-keywords/{custom.pk}/delete/").status_code == 403
    assert not Keyword.objects.filter(word="PROMO").exists()
    assert Keyword.objects.filter(pk=custom.pk).exists()
    page = marketer_client.get("/settings/sms-keywords/").content.decode()
    assert "<strong>HOURS</strong>" in page
    assert "only admins manage keywords" in page
    assert "Add keyword" not in page


def test_admin_is_refused_deleting_stop_with_the_reason(admin_client: Client) -> None:
    response = admin_client.post(f"/settings/sms-keywords/{_stop().pk}/delete/", follow=True)
    assert "STOP is a built-in opt-out word" in response.content.decode()
    assert "cannot be deleted" in response.content.decode()
    assert _stop().active


def test_admin_is_refused_switching_off_renaming_or_rekinding_a_builtin_word(admin_client: Client) -> None:
    stop = _stop()
    response = admin_client.post(f"/settings/sms-keywords/{stop.pk}/", {"word": "STOP", "kind": "opt_out"})
    assert response.status_code == 200
    assert "it cannot be switched off or deleted" in response.content.decode()
    response = admin_client.post(
        f"/settings/sms-keywords/{stop.pk}/", {"word": "HALT", "kind": "custom", "auto_reply": "x", "active": "on"}
    )
    page = response.content.decode()
    assert "its word cannot change" in page
    assert "its kind cannot change" in page
    stop.refresh_from_db()
    assert (stop.word, stop.kind, stop.active) == ("STOP", "opt_out", True)


def test_admin_edits_a_builtin_words_auto_reply_and_manages_custom_words(admin_client: Client) -> None:
    stop = _stop()
    edit = {"word": "stop", "kind": "opt_out", "auto_reply": "You're out.", "active": "on"}
    assert admin_client.post(f"/settings/sms-keywords/{stop.pk}/", edit).status_code == 302
    assert _stop().auto_reply == "You're out."
    added = {"word": "hours", "kind": "custom", "auto_reply": "9-5", "active": "on"}
    assert admin_client.post("/settings/sms-keywords/", added).status_code == 302
    hours = Keyword.objects.get(word="HOURS")
    assert admin_client.post(f"/settings/sms-keywords/{hours.pk}/delete/").status_code == 302
    assert not Keyword.objects.filter(pk=hours.pk).exists()


def test_code_cannot_delete_a_builtin_word_either() -> None:
    with pytest.raises(ProtectedKeyword):
        _stop().delete()
    with pytest.raises(ProtectedKeyword):
        Keyword.objects.filter(word__in=["STOP", "HELP"]).delete()
    assert Keyword.objects.filter(word__in=["STOP", "HELP"]).count() == 2


@pytest.mark.postgres
def test_the_database_refuses_deleting_or_switching_off_a_builtin_word() -> None:
    stop = _stop()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM texts_keyword WHERE id = %s", [stop.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        Keyword.objects.filter(pk=stop.pk).update(active=False)
    assert _stop().active


# Matching


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOP!",
        "\uff33\uff34\uff2f\uff30",
        "\uff53\uff54\uff4f\uff50",
        "stôp",
        "Stöp",
        "s\u0301top",
    ],
)
def test_folded_forms_of_stop_match_it(body: str) -> None:
    found = keyword_match(body)
    assert found is not None, body
    assert found.word == "STOP"


@pytest.mark.parametrize("body", ["please stop", "stop it", "STOP STOP", "st op", "", "!!!"])
def test_sentences_are_not_keywords(body: str) -> None:
    assert keyword_match(body) is None


def test_normalise_folds_width_case_and_accents() -> None:
    assert keyword_normalise("\uff21\uff32\uff32\uff25\uff34") == "arret"
    assert keyword_normalise("  Arrêt !") == "arret"


# What an opt-out word does


def _opted_out_by_keyword(number: str = NUMBER) -> None:
    contact = Contact.objects.get(mobile=number)
    assert contact_is_dnc(contact=contact)
    assert Suppression.objects.filter(address=number, lifted_at__isnull=True, source="keyword").exists()
    event = ConsentEvent.objects.filter(address=number).order_by("-id").first()
    assert event is not None
    assert (event.status, event.source) == (ConsentStatus.UNSUBSCRIBED, ConsentSource.KEYWORD)
    assert consent_state(address=number).status == ConsentStatus.UNSUBSCRIBED


def test_a_full_width_stop_opts_out_and_withdraws_consent(client: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    consent_record(contact=contact, status=ConsentStatus.SUBSCRIBED, source=ConsentSource.API)
    assert post(client, inbound_params("\uff33\uff34\uff2f\uff30")).status_code == 200
    _opted_out_by_keyword()
    assert ConsentEvent.objects.filter(address=NUMBER).count() == 2  # the subscription stays in the log


@pytest.mark.parametrize(("word", "reply"), [("Arrêt", "arrêt"), ("ALTO", "Alto.")])
def test_an_admin_added_word_in_another_language_acts_as_stop(
    admin_client: Client, client: Client, word: str, reply: str
) -> None:
    added = {"word": word, "kind": "opt_out", "auto_reply": "", "active": "on"}
    assert admin_client.post("/settings/sms-keywords/", added).status_code == 302
    assert Keyword.objects.filter(word=keyword_normalise(word).upper(), builtin=False).exists()
    post(client, inbound_params(reply))
    _opted_out_by_keyword()


def test_start_lifts_the_opt_out_but_does_not_give_marketing_consent(client: Client) -> None:
    contact = Contact.objects.create(mobile=NUMBER)
    consent_record(contact=contact, status=ConsentStatus.SUBSCRIBED, source=ConsentSource.API)
    post(client, inbound_params("STOP"))
    post(client, inbound_params("start"))
    assert not contact_is_dnc(contact=contact)
    assert not Suppression.objects.filter(address=NUMBER, lifted_at__isnull=True).exists()
    assert consent_state(address=NUMBER).status == ConsentStatus.UNSUBSCRIBED


def test_an_inactive_custom_opt_out_word_does_nothing(client: Client) -> None:
    Keyword.objects.create(word="ALTO", kind="opt_out", active=False)
    post(client, inbound_params("alto"))
    assert not Suppression.objects.exists()
    assert not ConsentEvent.objects.exists()
