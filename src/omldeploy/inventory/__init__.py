"""Inventory loading: YAML (Ansible format) → validated, typed `Tenant`."""

from omldeploy.inventory.load import load_tenant, load_text
from omldeploy.inventory.model import Host, Layout, Settings, Shape, Tenant
from omldeploy.inventory.problems import InventoryError, Problem

__all__ = ["Host", "InventoryError", "Layout", "Problem", "Settings", "Shape", "Tenant", "load_tenant",
           "load_text"]
