from django import template

from stall.catalog.names import product_name_shown

register = template.Library()

# {{ line.name|product_name }}: a membership's "(monthly)" in the reader's language.
register.filter("product_name", product_name_shown)
