from django.db import migrations, models
from django.db.models import F


def fill_totals(apps, schema_editor):
    # Replies stored before the column had both counts whenever they had any.
    Turn = apps.get_model("conversations", "Turn")
    Turn.objects.filter(
        total_tokens__isnull=True, prompt_tokens__isnull=False, completion_tokens__isnull=False
    ).update(total_tokens=F("prompt_tokens") + F("completion_tokens"))


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="turn",
            name="total_tokens",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(fill_totals, migrations.RunPython.noop),
    ]
