# See payments 0004: Wallet and Tab now belong to payments; their tables are left untouched.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0004_wallet_tab_from_wallets'),
        ('wallets', '0003_auto_top_up_and_overdue_tabs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='wallet',
                    name='account',
                ),
                migrations.RemoveField(
                    model_name='wallet',
                    name='auto_top_up_method',
                ),
                migrations.RemoveField(
                    model_name='wallet',
                    name='buyer',
                ),
                migrations.AlterField(
                    model_name='autotopup',
                    name='wallet',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='auto_top_ups', to='payments.wallet'),
                ),
                migrations.DeleteModel(
                    name='Tab',
                ),
                migrations.DeleteModel(
                    name='Wallet',
                ),
            ],
        ),
    ]
