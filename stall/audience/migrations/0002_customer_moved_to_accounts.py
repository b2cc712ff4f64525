"""Customer left for accounts (accounts.0005); drop it from this app's state, never the table."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("audience", "0001_initial"),
        ("accounts", "0005_customer"),
        ("orders", "0008_order_customer_in_accounts"),
        ("memberships", "0002_subscription_customer_in_accounts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Customer")],
            database_operations=[],
        ),
    ]
