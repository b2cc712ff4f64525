from django.db import migrations, models
from django.db.models import Sum


def refunded_fees_from_ledger(apps, schema_editor=None):
    """Set each refunded order's ``fee_refunded`` and ``platform_fee_refunded`` to what its refunds
    gave back in the ledger (its ``fee_refund`` and ``platform_fee_refund`` transfers). Orders
    refunded before these columns were kept have 0 there while the ledger moved the money."""
    Order = apps.get_model("orders", "Order")
    Transfer = apps.get_model("ledger", "Transfer")
    backs = (
        Transfer.objects.filter(code__in=("fee_refund", "platform_fee_refund"), state="posted")
        .values_list("reference", "code")
        .annotate(total=Sum("amount"))
    )
    column = {"fee_refund": "fee_refunded", "platform_fee_refund": "platform_fee_refunded"}
    for reference, code, total in backs:
        Order.objects.filter(pk=reference).update(**{column[code]: total})


class Migration(migrations.Migration):
    dependencies = [
        ("audience", "0001_initial"),
        ("checkout", "0001_initial"),
        ("ledger", "0002_account_debit_limit_alter_account_kind_and_more"),
        ("orders", "0005_entitlement_product_email"),
        ("payments", "0005_purchase_payment_has_store"),
        ("stores", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="platform_fee_refunded",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("fee_refunded__gte", 0), ("fee_refunded__lte", models.F("fee"))
                ),
                name="orders_fee_refund_within_fee",
            ),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("platform_fee_refunded__gte", 0),
                    ("platform_fee_refunded__lte", models.F("platform_fee")),
                ),
                name="orders_platform_fee_refund_within_fee",
            ),
        ),
        # Last: on PostgreSQL, rows updated here leave deferred triggers that an ALTER TABLE after
        # them in the same transaction would refuse.
        migrations.RunPython(refunded_fees_from_ledger, migrations.RunPython.noop),
    ]
