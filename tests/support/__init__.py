"""Test harness modules shared by the suite: helpers, fixtures' back ends and data builders."""
