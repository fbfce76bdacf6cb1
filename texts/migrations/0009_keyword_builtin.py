"""Built-in keywords (issue 17): the STOP, START and HELP families exist, are flagged built-in and stay active.

A word a user deleted comes back; one a user switched off or gave another kind is put back as carriers read it (its
auto-reply is kept). PostgreSQL also refuses to delete a built-in row (a trigger), whatever the code path.
"""

from django.db import migrations, models

# The families as Twilio documents them (opt-out, opt-in, help); a copy, so this migration never changes.
BUILTIN_KEYWORDS = {
    "opt_out": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    "opt_in": ("START", "YES", "UNSTOP"),
    "help": ("HELP", "INFO"),
}

TRIGGER = """
CREATE OR REPLACE FUNCTION texts_keyword_keep_builtin() RETURNS trigger AS $$
BEGIN
    IF OLD.builtin THEN
        RAISE EXCEPTION 'the built-in keyword % cannot be deleted', OLD.word USING ERRCODE = '23000';
    END IF;
    RETURN OLD;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER texts_keyword_keep_builtin BEFORE DELETE ON texts_keyword
    FOR EACH ROW EXECUTE FUNCTION texts_keyword_keep_builtin();
"""
UNTRIGGER = """
DROP TRIGGER IF EXISTS texts_keyword_keep_builtin ON texts_keyword;
DROP FUNCTION IF EXISTS texts_keyword_keep_builtin();
"""


def mark_builtin(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.db.models.functions import Upper

    Keyword = apps.get_model("texts", "Keyword")
    Keyword.objects.bulk_create(
        [Keyword(word=word, kind=kind) for kind, words in BUILTIN_KEYWORDS.items() for word in words],
        ignore_conflicts=True,
    )
    for kind, words in BUILTIN_KEYWORDS.items():
        Keyword.objects.annotate(upper=Upper("word")).filter(upper__in=words).update(
            builtin=True, active=True, kind=kind
        )


def unmark_builtin(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("texts", "Keyword").objects.update(builtin=False)


def add_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER, params=None)


def drop_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNTRIGGER, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("texts", "0008_engagement"),
    ]

    operations = [
        migrations.AddField(
            model_name="keyword",
            name="builtin",
            field=models.BooleanField(default=False, editable=False, verbose_name="built-in"),
        ),
        migrations.RunPython(mark_builtin, unmark_builtin),
        migrations.AddConstraint(
            model_name="keyword",
            constraint=models.CheckConstraint(
                condition=models.Q(("builtin", False), ("active", True), _connector="OR"),
                name="keyword_builtin_active",
            ),
        ),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
