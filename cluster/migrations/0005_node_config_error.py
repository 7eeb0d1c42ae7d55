from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cluster", "0003_virtual_services"),
        ("cluster", "0004_network"),
    ]

    operations = [
        migrations.AddField(
            model_name="node",
            name="config_error",
            field=models.TextField(blank=True, help_text="Why the node refused or failed the newest configuration."),
        ),
    ]
