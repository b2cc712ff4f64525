# The Wallet and Tab models move from the wallets app to payments (the state of the wallet and tab
# rails). Their tables stay where they are: only Django's idea of which app owns them changes.

import django.db.models.deletion
from django.db import migrations, models

import stall.core.ids


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_buyer'),
        ('ledger', '0002_account_debit_limit_alter_account_kind_and_more'),
        ('payments', '0003_payment_buyer_payment_purpose_alter_payment_checkout_and_more'),
        ('wallets', '0003_auto_top_up_and_overdue_tabs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Tab',
                    fields=[
                        ('id', stall.core.ids.PrefixedIdField(prefix='tab', serialize=False)),
                        ('currency', models.CharField(max_length=3)),
                        ('status', models.CharField(choices=[('open', 'Open'), ('settled', 'Settled')], default='open', max_length=8)),
                        ('limit', models.BigIntegerField()),
                        ('opened_at', models.DateTimeField(auto_now_add=True)),
                        ('settled_at', models.DateTimeField(blank=True, null=True)),
                        ('auto_settle_tried_at', models.DateTimeField(blank=True, null=True)),
                        ('overdue_notified_at', models.DateTimeField(blank=True, null=True)),
                        ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='tabs', to='ledger.account')),
                        ('buyer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='tabs', to='accounts.buyer')),
                        ('settlement', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='settled_tab', to='payments.payment')),
                    ],
                    options={
                        'db_table': 'wallets_tab',
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('buyer', 'currency'), name='wallets_one_open_tab_per_currency')],
                    },
                ),
                migrations.CreateModel(
                    name='Wallet',
                    fields=[
                        ('id', stall.core.ids.PrefixedIdField(prefix='wal', serialize=False)),
                        ('currency', models.CharField(max_length=3)),
                        ('confirm_above', models.BigIntegerField()),
                        ('auto_top_up_below', models.BigIntegerField(blank=True, null=True)),
                        ('auto_top_up_amount', models.BigIntegerField(blank=True, null=True)),
                        ('auto_top_up_failed_at', models.DateTimeField(blank=True, null=True)),
                        ('auto_top_up_failure', models.CharField(blank=True, max_length=255)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('account', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='wallet', to='ledger.account')),
                        ('auto_top_up_method', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='payments.savedpaymentmethod')),
                        ('buyer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='wallets', to='accounts.buyer')),
                    ],
                    options={
                        'db_table': 'wallets_wallet',
                        'constraints': [models.UniqueConstraint(fields=('buyer', 'currency'), name='wallets_one_wallet_per_currency')],
                    },
                ),
            ],
        ),
    ]
