-- Reserved: version 4 belongs to another change being made at the same time; this
-- empty version keeps the sequence whole until that one replaces it.
SELECT 1;
