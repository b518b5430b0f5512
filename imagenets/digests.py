"""Pinned SHA-256 digests of the official metadata files at commit ``META_COMMIT`` (never the lists)."""

from __future__ import annotations

from typing import Dict

#: relative path under the official ``data/`` folder -> SHA-256 of its bytes at ``META_COMMIT``.
LIST_SHA256: Dict[str, str] = {
    "categories/ImageNetS_categories_im50.txt":
        "cba1701f5d94bf0dfbb40f2d529daab362dff552b9bfcea4bcdddbb5fcf762ad",
    "names/ImageNetS_im50_validation.txt":
        "683614c6dd07d508e26862b24b3bcffccb919e50ee1ad1d14eb0e809ba8ee979",
    "names/ImageNetSemi_im50_train.txt":
        "830e654142938b28f8856951bc4b264018cc1c13bf577777bb1359cf37a7f969",
    "mapping/ImageNetS_im50_mapping_validation.txt":
        "d51e06461f83d3742527768a86e7cb2543adad64ba273cd22dfb27d57ea02458",
    "mapping/ImageNetS_im50_mapping_test.txt":
        "27b06a0b774f2a47b7660cee64187bf051ed98b734a0402f4b0c00e04f1dcbb4",
    "categories/ImageNetS_categories_im300.txt":
        "9327409a512019ff7be95354f33daf2735852c04fecd0ac261790ce23e4115ca",
    "names/ImageNetS_im300_validation.txt":
        "36f9cbe4b3be25ccf6875e1627347d084ddd5a19971ff167ede5f8eafa4a3a41",
    "names/ImageNetSemi_im300_train.txt":
        "05f032374bd7a9a81213828940809e09e1eeedc5b43d78a4e41c1d64cb7e492a",
    "mapping/ImageNetS_im300_mapping_validation.txt":
        "d887652204f140a57775740f000ea7660f7e34a458d7bcfcf9b3898501351482",
    "mapping/ImageNetS_im300_mapping_test.txt":
        "94f26c4bc8c1acf4b2756138055c621df01b064094d863289cd3d6c81476cb64",
    "categories/ImageNetS_categories_im919.txt":
        "b2ee89cf2d5def583dcea806b8cc99def3d9bb7355ae981fc4c986c6d8dec1da",
    "names/ImageNetS_im919_validation.txt":
        "76b5e5ca74b4270568d8197a6aa7bf1c658859da84966d9308d11263fda9a83c",
    "names/ImageNetSemi_im919_train.txt":
        "d8a33edfeda5ea6a302fbf5bfc41735dc6b8f3d525a7dfc09bc5cb39d6ec44db",
    "mapping/ImageNetS_im919_mapping_validation.txt":
        "52de0512c75cd04289f1b5be7fe2aad932a6f6e47288947d63e724985c5904b3",
    "mapping/ImageNetS_im919_mapping_test.txt":
        "b2e60b72dafe47c71ba3d912d912dce5d4b612aae60ee6dfbdd95d780133dd61",
}

#: ``data/data.py`` at ``META_COMMIT``: its ``classes_50/300/919`` strings hold the class names.
DATA_PY = "data.py"
DATA_PY_SHA256 = "4a7365ee7cfc2bd074a87d70c15117cb3d736b9680aea9e24ba768e61b69f18b"
