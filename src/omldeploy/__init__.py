"""omldeploy: deploy and operate OMniLeads tenants."""

__version__ = "0.1.0"
