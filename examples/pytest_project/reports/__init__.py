"""An example application that queues report generation."""
