"""Applications of a distilled set beyond training one student: class-incremental learning."""
