"""Recommendations: a tenant's rules mapping score drivers to retention actions."""
