"""Customer moves here from the audience app, in Django's state only: the table
(``audience_customer``), its constraint and its rows stay exactly as they are.

audience sits above the product domains now, yet orders and memberships point at customers; the
model belongs beside Buyer. Fresh databases get the table from audience.0001 as before."""

import django.db.models.deletion
from django.db import migrations, models

import stall.core.ids


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_two_factor"),
        ("stores", "0001_initial"),
        ("audience", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Customer",
                    fields=[
                        ("id", stall.core.ids.PrefixedIdField(prefix="cus", serialize=False)),
                        ("email", models.EmailField(max_length=254)),
                        ("name", models.CharField(blank=True, max_length=120)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("store", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="customers", to="stores.store")),
                    ],
                    options={
                        "db_table": "audience_customer",
                        "constraints": [models.UniqueConstraint(fields=("store", "email"), name="audience_customer_unique_email")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
