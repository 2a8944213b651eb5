import django.db.models.deletion
from django.db import migrations, models

# The indexes Django made for the two foreign keys (its names are derived from the table and the
# column, the same on every database). Dropped by name: altering the fields instead would make
# SQLite copy the whole turn table, twice.
INDEXES = {
    "conversations_turn_conversation_id_5017480b": "conversation_id",
    "conversations_turn_parent_id_1c592ef8": "parent_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_usage_carry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[f'DROP INDEX IF EXISTS "{name}"' for name in INDEXES],
                    reverse_sql=[
                        f'CREATE INDEX "{name}" ON "conversations_turn" ("{column}")'
                        for name, column in INDEXES.items()
                    ],
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="turn",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="turns",
                        to="conversations.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="turn",
                    name="parent",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="children",
                        to="conversations.turn",
                    ),
                ),
            ],
        ),
    ]
