from django.db import migrations

from stall.core.migration_ops import fillfactor


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_account_kind_envelope")]

    # Every transfer updates two accounts' totals (a store's balance at each sale); room on the
    # page keeps those updates from writing the two indexes each time.
    operations = [fillfactor("ledger_account", 50)]
