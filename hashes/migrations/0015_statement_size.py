"""A statement's size as received (the JWS's length in bytes), which the daily byte quota adds up
(hashes.services.submission.check_daily_quota). A nullable column without a default or a check:
PostgreSQL adds it without rewriting or scanning the table. Statements received before it have none;
0016 fills in those of the quota's window."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('hashes', '0014_corroboration_life'),
    ]

    operations = [
        migrations.AddField(
            model_name='statement',
            name='size',
            field=models.IntegerField(blank=True, help_text='Length of the JWS as received, in bytes (what the daily byte quota counts). Empty: received before sizes were recorded.', null=True),
        ),
    ]
