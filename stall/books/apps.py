from django.apps import AppConfig


class BooksConfig(AppConfig):
    name = "stall.books"
    label = "books"

    def ready(self):
        from stall.orders.fulfilment import OrderPaidObserver, order_paid_register
        from stall.orders.refunds import order_refunded_register

        from .set_aside import SPLIT_SQL, set_aside_observe, set_aside_postings, set_aside_reverse

        # Each paid order sets its share of the net aside (tax reserve, envelopes), in the same
        # ledger statements as the sale; a store with no split costs the lean spend nothing.
        order_paid_register(OrderPaidObserver(handler=set_aside_observe, read_sql=SPLIT_SQL, postings=set_aside_postings))
        # A refund takes its share back out of them.
        order_refunded_register(set_aside_reverse)
