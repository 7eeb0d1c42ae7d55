from django.db import migrations


class Migration(migrations.Migration):
    """The rolling reboot's rows belong to the cluster app now (cluster 0010); their tables stay."""

    dependencies = [
        ("firmware", "0002_rolloutnode_reboot_requested_at"),
        ("cluster", "0010_rollout_moves_here"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="RolloutNode"),
                migrations.DeleteModel(name="Rollout"),
            ],
        ),
    ]
