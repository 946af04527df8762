from django.db import migrations

# A starting taxonomy modelled on the behaviour-based categories industry hash-sharing programmes
# use; administrators edit it in the admin.
DEFAULT_LABELS = [
    ("graphic-violence", "Graphic violence", "Depictions of real-world violent attacks, killing or injury."),
    ("glorification", "Glorification", "Praise or celebration of terrorist attacks or perpetrators."),
    ("recruitment", "Recruitment", "Content that recruits for or promotes joining a violent extremist group."),
    ("instruction", "Instruction", "Manuals or guidance for weapons, attacks or evading detection."),
    ("imminent-threat", "Imminent threat", "A credible, specific threat of violence."),
    ("attacker-manifesto", "Attacker manifesto", "Documents written by attackers in connection with an attack."),
    ("content-incident", "Content incident", "Content produced during a declared real-world incident (e.g. a live-streamed attack)."),
]


def seed(apps, schema_editor):
    Label = apps.get_model("hashes", "Label")
    FeedHead = apps.get_model("hashes", "FeedHead")
    for slug, name, description in DEFAULT_LABELS:
        Label.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})
    FeedHead.objects.get_or_create(pk=1, defaults={"last_seq": 0})


class Migration(migrations.Migration):
    dependencies = [("hashes", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
