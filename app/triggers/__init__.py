"""The CRM webhook that starts an execution: `POST /api/ramps/<ramp_uuid>/trigger`."""
