"""The humanoid task family: a 12-DoF biped (sim/humanoid/humanoid.xml, hardware/humanoid.yaml)
that balances under pushes or tracks a commanded base velocity."""
