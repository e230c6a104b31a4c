DROP TABLE node_seconds;
DROP TABLE nodes;
