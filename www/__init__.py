"""The browser page (HTML, CSS and JS modules), shipped as package data.

A Python package only so that an installed walkie can find its page with
``importlib.resources.files("www")`` (see signaling/static.py); no Python code lives here.
"""
