"""Storefront pages that span domains: the store and product pages, buying, paying and the receipt page."""
