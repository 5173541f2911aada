"""The Linux packages of the endpoint: a .deb (``deb.build``) and an .rpm (``rpm.build``) of a frozen build."""
