"""sp-sync: SharePoint Online lists → pandas → Excel rollups, as an Azure Functions add-on."""

from __future__ import annotations

__version__ = "0.1.0"
